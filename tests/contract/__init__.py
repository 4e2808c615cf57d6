"""Contract tests: every optimizer of the table (``optim_db.OPTIM_DB``) against each framework's conventions."""
