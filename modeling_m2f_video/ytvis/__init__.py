"""The YouTube-VIS file formats, shared by the training reader, the metric and every writer of predictions.

- `rle`: pycocotools compressed RLE (encode, decode, areas, fast checks of many strings);
- `reader`: annotation files and submissions, checked record by record into `Track`s;
- `records`: instances -> result records, and the evaluation server's submission zip.
"""
