"""streams"""
X = 1
