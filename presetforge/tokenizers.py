class Tokenizer: """placeholder"""
