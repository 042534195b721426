"""Code the documentation includes (pymdownx.snippets) that is not part of an example site.

Each file is imported and run by tests/test_docs_tutorial.py or tests/test_docs_samples.py.
"""
