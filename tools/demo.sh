#!/usr/bin/env bash
# `make demo`: the main job on the embedded default, run by the Makefile after set-up.
#
# 1. Live-style streaming: bundled audio (synthetic voices never seen in training, and real recorded speech) is played
#    into the bundled model in real time, 160 ms at a time, through the causal recurrent form (a fixed-size state per
#    stream), decoded with the bundled lexicon + n-gram LM (each stream's own beam search); partial results ("... ")
#    appear as the audio arrives, finals at each endpoint.
# 2. Batch evaluation: `asr eval` over the bundled test sets, full-utterance and streaming: WER, CER, real-time factor,
#    with the LM (the default) and without it (--no-lm: greedy CTC, which for a phone model gives phones, scored
#    as a phone error rate).
# The model, its LM and the audio: asr/assets/model/README.md, asr/assets/audio/LICENSES.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ASR=.venv/bin/asr
AUDIO=asr/assets/audio
# One thread, and threads that sleep instead of spinning: the fastest setting for one stream on a small machine.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}

echo "== Transcurrent demo: the bundled model (asr/assets/model/README.md) =="
echo
echo "-- 1. live-style streaming: bundled audio played in real time, 160 ms chunks; '... ' lines are partials --"
# The synthetic clips: the longest of each of four engines (festival, pico, RHVoice, piper) in synth_test.jsonl.
for f in synth/247-1594-0009 synth/307-1923-0000 synth/367-2386-0010 synth/277-1774-0011 \
         real/librivox-sense_and_sensibility_01_austen_64kb-0880 real/goforward; do
    ref=$(grep -hF "\"$f.flac\"" "$AUDIO"/*.jsonl | sed 's/.*"text": "\([^"]*\)".*/\1/') || {
        echo "tools/demo.sh: $f.flac is in none of $AUDIO/*.jsonl (were the bundled clips re-made?)" >&2
        exit 1
    }
    echo
    echo "[$f.flac]  reference: $ref"
    $ASR transcribe --stream --realtime --partials --threads 1 "$AUDIO/$f.flac"
done
echo
echo "-- 2. batch WER on the bundled test sets --"
for set in synth_test real; do
    for mode in full stream; do
        echo
        echo "[$set, $mode, lexicon + LM]"
        $ASR eval --data "$AUDIO/$set.jsonl" --mode "$mode" --threads 1 --no-progress --out "runs/demo/eval-$set-$mode"
        echo "[$set, $mode, --no-lm: greedy]"
        $ASR eval --data "$AUDIO/$set.jsonl" --mode "$mode" --threads 1 --no-progress --no-lm \
            --out "runs/demo/eval-$set-$mode-nolm"
    done
done
echo
echo "Per-utterance reports: runs/demo/eval-*/ (utterances.jsonl, summary.json, report.txt)"
