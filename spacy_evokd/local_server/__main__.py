"""`python -m spacy_evokd.local_server ...`: see cli.py."""

from .cli import app

if __name__ == "__main__":
    app()
