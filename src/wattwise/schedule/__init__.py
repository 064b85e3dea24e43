"""Carbon-aware scheduling: hourly intensity outlooks, forecasters, the planner, batch plans and their evaluation.

Everything here works in UTC on an hourly grid. The planner is pure (arrays in, decisions out) and knows nothing of
providers; :mod:`wattwise.schedule.outlook` builds what it reads from the carbon layer. numpy is imported by these
modules only, never by the measuring core.
"""
