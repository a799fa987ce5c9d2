// Writes tests/data/gpt2_hf_encodings.json: GPT-2's vocabulary as Hugging Face
// tokenizer.json variants (prefix space, added tokens with lstrip / rstrip /
// single_word, ignore_merges) and the ids that Hugging Face's own tokenizers
// library (its Rust core, through the npm package "tokenizers") gives for a
// set of texts, with added tokens matched. tokenizer_test.cpp rebuilds each
// variant from the same description and must produce the same ids.
//
//   npm install --prefix /tmp/hf tokenizers@0.23.2
//   NODE_PATH=/tmp/hf/node_modules node tests/data/make_gpt2_hf_fixture.js GPT2_DIR \
//       > tests/data/gpt2_hf_encodings.json
//
// GPT2_DIR holds encoder.json and vocab.bpe (scripts/fetch-gpt2-vocab.sh).

'use strict';
const fs = require('fs');
const path = require('path');
const { Tokenizer } = require('tokenizers');

const dir = process.argv[2];
if (!dir) throw new Error('usage: node make_gpt2_hf_fixture.js GPT2_DIR');
const encoder = JSON.parse(fs.readFileSync(path.join(dir, 'encoder.json'), 'utf8'));
const merges = fs.readFileSync(path.join(dir, 'vocab.bpe'), 'utf8').split('\n').slice(1)
  .filter((line) => line.length > 0);

function added(id, content, options) {
  return Object.assign({ id, content, single_word: false, lstrip: false, rstrip: false,
                         normalized: false, special: true }, options);
}
const endoftext = added(50256, '<|endoftext|>', { normalized: true });

// Each variant: the pre-tokenizer's add_prefix_space, model.ignore_merges and
// the added tokens (new ones numbered from 50257 in order, as Hugging Face
// would number them itself).
const variants = [
  { name: 'plain', add_prefix_space: false, ignore_merges: false, added_tokens: [endoftext] },
  { name: 'prefix_space', add_prefix_space: true, ignore_merges: false,
    added_tokens: [endoftext] },
  { name: 'ignore_merges', add_prefix_space: false, ignore_merges: true,
    added_tokens: [endoftext] },
  { name: 'added_tokens', add_prefix_space: false, ignore_merges: false,
    added_tokens: [
      endoftext,
      added(50257, '<mask>', { lstrip: true }),
      added(50258, '<r>', { rstrip: true }),
      added(50259, '<both>', { lstrip: true, rstrip: true }),
      added(50260, 'zqz', { single_word: true, normalized: true, special: false }),
      // Already a vocabulary token: keeps its id, and now splits words.
      added(38227, 'qq', { normalized: true, special: false }),
      added(50261, '<|act|>'),
      added(50262, '<|act|>x'),
      added(50263, '\u20ac\u20ac', { special: false }),
    ] },
];

const texts = [
  'Hello world',
  'Hello world<|endoftext|>',
  '<|endoftext|>Hello<|endoftext|> world <|endoftext|>',
  'A natural language autoencoder explains an activation in words.',
  "I'm sure you're right, DON'T SHOUT. 's 'S",
  '  two leading spaces and trailing   ',
  'line one\nline two\n\n\tTabbed',
  'naïve café 日本語 🍕 \u00a0\u3000 done',
  '12345 3.14 $100',
  'the <mask> sat on the  <mask>mat',
  'a <r>   b <r>\n\nc<r>',
  'x  <both>  y<both>z',
  'zqz azqz zqzb (zqz) zqz',
  'qq aqqa qqb',
  'the<|act|>slot <|act|>x <|act|> x<|act|><|act|>',
  'price: 12\u20ac\u20ac or \u20ac\u20ac\u20ac',
  'mixed <mask><r><both>zqz<|act|>\u20ac\u20ac<|endoftext|>',
  '',
  ' ',
  '<mask>',
  'supercalifragilisticexpialidocious'.repeat(3),
];

function tokenizerJson(v) {
  const byteLevel = { type: 'ByteLevel', add_prefix_space: v.add_prefix_space, trim_offsets: true,
                      use_regex: true };
  return {
    version: '1.0', truncation: null, padding: null, added_tokens: v.added_tokens,
    normalizer: null, pre_tokenizer: byteLevel, post_processor: byteLevel, decoder: byteLevel,
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null,
             end_of_word_suffix: null, fuse_unk: false, byte_fallback: false,
             ignore_merges: v.ignore_merges, vocab: encoder, merges },
  };
}

(async () => {
  const out = { generator: 'tests/data/make_gpt2_hf_fixture.js',
                encoder: `tokenizers@${require('tokenizers/package.json').version} (npm)`,
                variants: [] };
  for (const v of variants) {
    const tokenizer = Tokenizer.fromString(JSON.stringify(tokenizerJson(v)));
    const cases = [];
    for (const text of texts) {
      const encoding = await tokenizer.encode(text, null, { addSpecialTokens: false });
      cases.push({ text, ids: Array.from(encoding.getIds()) });
    }
    out.variants.push({ name: v.name, add_prefix_space: v.add_prefix_space,
                        ignore_merges: v.ignore_merges, added_tokens: v.added_tokens, cases });
  }
  // One case per line keeps the file readable and its diffs small.
  const lines = JSON.stringify(out, (key, value) =>
    key === 'ids' ? JSON.stringify(value) : value, 1).replace(/"ids": "(\[[0-9,]*\])"/g, '"ids": $1');
  process.stdout.write(lines + '\n');
})();
