"""The Django sites and apps the suite serves: ``default`` (the suite's own settings), and the
sites that particular tests run in their own processes or settings."""
