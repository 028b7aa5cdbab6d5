"""What a run leaves on disk and what reads it back: the result records (``records``, the shape a record must have
in ``record_schema``, a sweep's records packed into one file in ``packed``), the content-addressed cache of
trained models (``artifacts``, with the atomic write every file goes through), the lock on a results folder
(``lock``), the temp files a killed run left (``stale_files``), which configuration a sweep folder holds
(``versions``, ``effective_spec``) and its sample sheets (``sample_sheets``). It may import the spec (a record
is a cell's), ``guards`` and ``process``; never training, execution or tracking, so the report and later runs read
a results folder without running anything.
"""
