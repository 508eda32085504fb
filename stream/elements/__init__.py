"""The built-in elements, one module each; ``cleanfeed.stream.registry`` imports them all to find one by name.

Importing this package alone loads nothing more, so an element's process imports just its own
module and what that needs (an identity hop does not pay for PyAV, OpenCV or torch).
"""
