"""One module per ``moodcam`` sub-command: HELP, add_arguments(parser), run(args)."""
