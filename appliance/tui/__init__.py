"""The TUI (textual): a live rig dashboard and profile control. The only package that imports textual."""
