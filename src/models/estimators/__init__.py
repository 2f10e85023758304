"""What is fitted: the direction models (`direction`), the how-soon models (`time_models`, with their survival
maths in `survival`), the samples they learn from (`dataset`), the two tasks behind one interface (`tasks`) and
the work units an executor runs (`units`)."""
# Models stored before the models were grouped by role name their classes `src.models.estimators.X`: pickle
# looks them up here (the registry maps the other old module names).
from src.models.estimators.direction import ClimatologyModel

__all__ = ["ClimatologyModel"]
