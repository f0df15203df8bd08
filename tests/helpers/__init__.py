"""Helpers shared by tests in several folders (imported as ``tests.helpers.<module>``)."""
