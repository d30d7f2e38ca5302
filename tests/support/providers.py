"""Calling a provider's check() as the engine does, in tests."""


def checked(provider, props, olds=None) -> dict:
    """The checked inputs; fails the test, listing every failure, if check() refuses them."""
    result = provider.check(olds or {}, props)
    assert result.failures == [], [(f.property, f.reason) for f in result.failures]
    return result.inputs
