"""The sweep file, the grid it expands to, and the MI schedule."""
