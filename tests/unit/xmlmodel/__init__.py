"""Unit tests of components/xmlmodel/."""
