"""Pure-Python logic and online (River) models. No Kafka, Faust, Redis or settings imports here:
everything runs, pickles and tests in a plain Python loop, and the offline evaluator runs this code.
"""
