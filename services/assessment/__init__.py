"""管理考核 — assessment: timeliness, returns and citizen satisfaction per department."""
