"""The log: one SQLite database plus crop files under the state directory, and its retention."""
