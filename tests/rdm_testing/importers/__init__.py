"""Files in the paper authors' container formats, for the importer tests."""
