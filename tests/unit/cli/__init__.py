"""Unit tests of components/cli/."""
