"""The archive pass and its parts, one job each:

run_pass.py   one pass top to bottom (recover, scan, forecast, archive due, delete, manifest)
context.py    PassContext: what a pass works with (collaborators and settings), passed by keyword
scan.py       call-log day slices into the state (run, dry run, verify)
recording.py  one recording: already stored? download, upload, sidecar, state; returns its outcome
transfer.py   the download and upload pools joined by spool slots (knows nothing of recordings)
breaker.py    a failing world (outage) told from a failing recording
layout.py     keys, sidecars, manifest lines, content types, "is it already stored?"
manifest.py   the run's manifest, written as it goes, and the hash chain across runs
forecast.py   will the backlog beat RingCentral's deletion deadlines? (pure)
deletion.py   delete at the source after a verified archive (opt in)
tally.py      counting outcomes, and the scan's result, into the run summary
progress.py   progress events or a terminal bar
plan.py       the dry run
"""
