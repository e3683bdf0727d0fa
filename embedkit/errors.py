"""The one error type users can cause; the CLI turns it into exit code 2 without a traceback."""


class EmbedkitError(Exception):
    """A problem with the user's input (recipe, data, paths), with a message that says where."""
