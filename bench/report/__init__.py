"""Views of a run: the leaderboard and its tables, the generated reading, the HTML report, the gate."""
