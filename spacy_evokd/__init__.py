"""spacy-evokd: distil an LLM teacher into a small spaCy textcat/ner student.

This module is imported by spaCy's entry-point machinery, so it must stay import-light and must
never fail: the registered functions live in ``registrations.py`` and are loaded lazily by name.
"""

__version__ = "0.1.0"
