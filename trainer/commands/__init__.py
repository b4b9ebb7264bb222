"""One module per ``moodcam-train`` sub-command: HELP, add_arguments(parser), run(args)."""
