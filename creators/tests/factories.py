from gifts.tests.factories import make_creator

__all__ = ["make_creator"]
