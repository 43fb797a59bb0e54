"""Charts shared by the dashboard and the training report: plotly figure builders (`figures`), segment
colours (`colours`) and the partial plotly.js bundle both draw with (`bundle`).

Uses pandas and plotly: the scoring server never imports this package (tests/test_deploy.py checks it).
"""
