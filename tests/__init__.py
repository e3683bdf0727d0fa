"""embedkit's tests, a package (as is every folder in it): test modules get unique names (tests.serve.test_rerank
beside tests.retrieve.test_rerank) and share tests/helpers.py as ``from tests.helpers import ...``."""
