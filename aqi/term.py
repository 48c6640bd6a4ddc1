"""The terminal: one rich Console for every stage's tables and progress bars.

Logs and pipes get 120 columns (rich's default of 80 folds the tables and cuts progress lines);
a terminal keeps its own width.
"""

from rich.console import Console

console = Console(width=None if Console().is_terminal else 120)
