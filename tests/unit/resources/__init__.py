"""Unit tests of components/resources/."""
