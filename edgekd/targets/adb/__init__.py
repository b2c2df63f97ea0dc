"""adb targets: an Android phone reached with the adb client (Python or tool mode)."""
