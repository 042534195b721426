"""Earlier versions of examples/chat files that docs/tutorial.md builds up before the final ones."""
