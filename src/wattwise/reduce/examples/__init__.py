"""Built-in, fully offline examples for ``wattwise optimize --example``."""
