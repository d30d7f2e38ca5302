"""Unit tests of components/guest/."""
