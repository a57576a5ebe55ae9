from ._iterative import sketch_and_project

__all__ = ["sketch_and_project"]
