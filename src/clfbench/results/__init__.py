"""Where runs are kept: run folders with a SQLite index (`store`), and the results table (`table`)."""
