"""CLI commands, one module per concern; registered in edgekd.cli."""
