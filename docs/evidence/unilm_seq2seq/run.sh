# smoke evidence for the prefix-LM seq2seq route; first: mkdir -p /tmp/ev && head -3000 ../shared/data/translation/tatoeba-cmn-eng/cmn.txt | cut -f1,2 | tr "\t" "\n" > /tmp/ev/corpus.txt
set -e
cd /work/wt/issue11b
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
PY=/work/main/.venv/bin/python
$PY -m sesame.cli.main pretrain recipes/unilm-tiny-en.toml --out /tmp/ev/unilm --overwrite --no-progress \
  --set 'data.inputs=["/tmp/ev/corpus.txt"]' --set data.seq_len=64 --set data.workers=1 --set tokenizer.vocab_size=3000 \
  --set train.steps=150 --set train.batch_size=16 --set train.warmup=20 --set train.eval_every=0 --set train.save_every=0 \
  --set train.precision=fp32 --set train.log_every=50 --set model.max_positions=160 2>&1 | tail -3
$PY -m sesame.cli.main finetune /tmp/ev/unilm/model --dataset tatoeba --out /tmp/ev/ft --max-train 2000 --max-eval 100 \
  --set train.steps=300 --set train.batch_size=16 --set train.threads=1 --set train.eval_every=0 --no-progress 2>&1 | tail -8
$PY -m sesame.cli.main translate /tmp/ev/ft/model "I love you." "Good morning."
