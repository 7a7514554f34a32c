class JobInputError(ValueError):
    """Raised by a model runner when an input passes the schema but cannot be processed."""
