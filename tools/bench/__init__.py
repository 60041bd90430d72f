"""The measuring and reporting code of tools/bench_streaming.py and tools/long_stream.py, one module per concern;
the two scripts keep their command lines (argument parsing, the run, the output files) and import these.

    streaming_setup       settings, targets and the benchmarked model (bundled or default config, overrides)
    streaming_latency     1. per-chunk latency as a stream grows
    streaming_rtf         2. real-time factor through the Recognizer, pocketsphinx beside it
    streaming_throughput  3. streams per core against the matmul bound
    streaming_report      tables and figure
    long_stream_signal    the long signal: utterances joined with pauses
    long_stream_run       the stream fed chunk by chunk, timed; encoder steps replayed at both ends
    long_stream_score     stream transcript against the separate decodes
    long_stream_report    memory and latency summaries, figure, table, JSONL files

Imported as ``bench`` (tools/ is first on ``sys.path`` when a script in it runs).
"""
