"""``python -m training_job``: see training_job.cli."""
import sys

from training_job.cli import main

sys.exit(main())
