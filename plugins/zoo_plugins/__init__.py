"""Built-in recall-zoo plugins, written exactly like third-party plugins."""
