"""Stands in for rules_python offline: Bazel 4's native Python rules under rules_python's names."""

def py_library(**kwargs):
    native.py_library(**kwargs)

def py_binary(**kwargs):
    native.py_binary(**kwargs)

def py_test(**kwargs):
    native.py_test(**kwargs)
