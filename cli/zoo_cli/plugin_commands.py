"""Commands added by plugins (the ``zoo_register_commands`` hook), with core commands protected.

Each plugin's hook runs against the app; what it added is kept unless it would replace a core
command or a command another plugin added first, and a hook that raises is rolled back and reported
in one warning line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

HOOK = "zoo_register_commands"


def _name(info: Any) -> str:
    if getattr(info, "name", None):
        return str(info.name)
    callback = getattr(info, "callback", None)
    return callback.__name__.replace("_", "-") if callback is not None else ""


def register_plugin_commands(
    app: Any, manager: Any, reserved: Iterable[str], on_warning: Callable[[str], None]
) -> None:
    """Let every loaded plugin add Typer commands or groups to ``app``; none may shadow ``reserved``."""
    reserved = set(reserved)
    for record, function in manager.hook_functions(HOOK):
        before = {"commands": list(app.registered_commands), "groups": list(app.registered_groups)}
        try:
            function(app=app)
        except Exception as exc:  # noqa: BLE001 - a plugin's bug must not break the CLI
            app.registered_commands[:] = before["commands"]
            app.registered_groups[:] = before["groups"]
            manager.record_hook_error(record, HOOK, exc)
            on_warning(record.warning_line())
            continue
        for attribute in ("registered_commands", "registered_groups"):
            registered = getattr(app, attribute)
            kept = registered[: len(before["commands" if attribute == "registered_commands" else "groups"])]
            for info in registered[len(kept) :]:
                name = _name(info)
                if name in reserved:
                    on_warning(
                        f"warning: plugin {record.name} tried to replace core command 'zoo {name}'; ignored"
                    )
                    continue
                reserved.add(name)
                kept.append(info)
                record.provides.setdefault("command", []).append(name)
            registered[:] = kept
