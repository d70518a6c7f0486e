"""streams"""

X = 1
