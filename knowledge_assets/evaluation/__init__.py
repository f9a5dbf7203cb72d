"""Quality measurements against gold corpora in the ecbplus-dev format."""
