"""placeholder"""
class StubLLM:  # noqa
    pass
