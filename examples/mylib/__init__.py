"""A local package that examples/images.py ships into its containers."""


def greet(name: str) -> str:
    return f"hello, {name}, from mylib"
