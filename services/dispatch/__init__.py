"""网络派单 and 跟踪反馈 — network dispatch and tracking of work orders."""
