"""The daemon: stages started in order and stopped in reverse, systemd notify, what gets logged."""
