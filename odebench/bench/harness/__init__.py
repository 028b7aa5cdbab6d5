"""The sweep harness: spec -> plan -> (cached) training -> sampling -> metrics -> one record per cell."""
